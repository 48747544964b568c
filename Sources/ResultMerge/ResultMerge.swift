/// Cross-shard result merging (placeholder until the merge engine lands).
enum ResultMerge {}
