"""The store: the append-only JSONL journal (source of truth) and its rebuildable SQL projection."""
