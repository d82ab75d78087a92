"""Mail: provider presets and discovery, and talking to users' IMAP/SMTP servers."""
