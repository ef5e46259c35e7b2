"""Review: channel policies and the approval decisions they make."""
