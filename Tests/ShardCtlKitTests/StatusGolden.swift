/// What the admin port's `GET /status` writes for AdminServerTests' fixture (AdminStatusGoldenTests checks
/// that the server writes exactly this JSON); ShardCtlKitTests decodes and renders it.
enum StatusGolden {
    static let json = #"""
    {
      "clients": 5,
      "counters": {
        "errors": 2,
        "fenced_reads": 12,
        "primary_reads": 50,
        "queries": {
          "all": 7,
          "any": 10,
          "local": 0,
          "multi": 3,
          "single": 120
        },
        "queries_total": 140,
        "replica_reads": 90
      },
      "map_version": 3,
      "paused_slot_count": 101,
      "paused_slots": "0-99,300",
      "pools": [
        {
          "busy": 2,
          "idle": 3,
          "role": "primary",
          "server": "postgresql://postgres@127.0.0.1:5500/app",
          "shard": "s0",
          "size": 20,
          "waiting": 0
        },
        {
          "busy": 1,
          "idle": 4,
          "role": "replica",
          "server": "postgresql://postgres@127.0.0.1:5501/app",
          "shard": "s0",
          "size": 20,
          "waiting": 0
        }
      ],
      "primaries": [
        {
          "healthy": true,
          "problem": null,
          "shard": "s0",
          "url": "postgresql://postgres@127.0.0.1:5500/app",
          "wal_lsn": "0/3000060"
        },
        {
          "healthy": true,
          "problem": null,
          "shard": "s1",
          "url": "postgresql://postgres@127.0.0.1:5502/app",
          "wal_lsn": "0/5000000"
        }
      ],
      "replicas": [
        {
          "health": "healthy",
          "healthy": true,
          "in_rotation": true,
          "lag_bytes": 0,
          "lag_ms": 0,
          "reason": null,
          "replay_lsn": "0/3000060",
          "shard": "s0",
          "url": "postgresql://postgres@127.0.0.1:5501/app"
        },
        {
          "health": "unreachable: connection refused",
          "healthy": false,
          "in_rotation": false,
          "lag_bytes": null,
          "lag_ms": null,
          "reason": "unreachable: connection refused",
          "replay_lsn": null,
          "shard": "s1",
          "url": "postgresql://postgres@127.0.0.1:5503/app"
        }
      ],
      "sampled_at": "2025-12-01T15:00:34.567Z",
      "shards": [
        {
          "name": "s0",
          "primary": "postgresql://postgres@127.0.0.1:5500/app",
          "replicas": [
            "postgresql://postgres@127.0.0.1:5501/app"
          ],
          "slot_count": 512,
          "slots": "0-511"
        },
        {
          "name": "s1",
          "primary": "postgresql://postgres@127.0.0.1:5502/app",
          "replicas": [
            "postgresql://postgres@127.0.0.1:5503/app"
          ],
          "slot_count": 512,
          "slots": "512-1023"
        }
      ],
      "slot_count": 1024,
      "started_at": "2025-12-01T14:40:00.000Z"
    }
    """#
}
