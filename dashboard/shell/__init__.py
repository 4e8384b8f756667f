"""What every view shares: the page frame, the controls, URL sync, heading, health banner, upload and downloads."""
