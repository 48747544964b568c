import ShardCtlKit
print("shardctl: not implemented yet")
