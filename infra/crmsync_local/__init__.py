"""Everything that runs crmsync outside AWS: emulators, the local runner, test servers, the demo."""
