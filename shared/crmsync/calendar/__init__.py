"""Calendar servers (SPEC C1-C7): the CalDAV adapter of the `CalendarConnector` and
`CalendarServer` ports, the provider presets, and failures in the user's words."""
