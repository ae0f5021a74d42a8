"""Pure decision code: strategies and the indicators they share. No I/O, no clock."""
