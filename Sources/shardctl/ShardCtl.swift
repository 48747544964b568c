import ArgumentParser

/// `shardctl`: the operator CLI (DESIGN §1). One file per subcommand; this one only lists them.
@main
struct ShardCtl: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "shardctl",
        abstract: "Operate ShardGate proxies through their admin ports.",
        subcommands: [Status.self, MapCommand.self, RebalanceCommand.self, VerifyCommand.self])
}
