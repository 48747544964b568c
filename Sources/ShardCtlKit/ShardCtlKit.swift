import CLibPQ
/// shardctl library (placeholder until it lands).
enum ShardCtlKitPlaceholder {}
