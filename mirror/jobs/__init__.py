"""Jobs: the sync, validate and publish steps that wire the rooms together."""
