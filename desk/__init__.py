"""Trading Desk: an unattended crypto trading daemon and its control room."""
