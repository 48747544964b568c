/// Why a rebalance (or verify) cannot go on; `description` is what shardctl prints.
public enum RebalanceError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A request that cannot be planned (bad slot list, count, shards).
    case invalidRequest(String)
    /// A shard name that is not in the map (name, the names that are).
    case unknownShard(String, known: [String])
    /// The listed proxies do not serve the same map (proxy → version).
    case proxiesDisagree([String: Int])
    /// A preflight check failed: nothing was changed (the problems, one per line).
    case preflight([String])
    /// Another rebalance holds the lock, or left objects behind.
    case busy(String)
    /// The journal cannot be used (path, problem).
    case journal(String, String)
    /// The copy or catch-up did not finish (why).
    case copy(String)
    /// The cutover was abandoned before the map flip: the old map still serves (why).
    case cutoverAborted(String)
    /// The cutover flipped the map on some proxies but could not finish; `--resume` completes it.
    case cutoverIncomplete(String)
    /// `--abort` is not possible any more (why).
    case abortNotPossible(String)
    /// Something else went wrong in a step (step, problem).
    case step(String, String)

    public var description: String {
        switch self {
        case .invalidRequest(let text):
            return text
        case .unknownShard(let name, let known):
            return "no shard \"\(name)\" in the map (shards: \(known.joined(separator: ", ")))"
        case .proxiesDisagree(let versions):
            let list = versions.sorted { $0.key < $1.key }.map { "\($0.key) has version \($0.value)" }
            return "the proxies do not serve the same map (\(list.joined(separator: ", "))); wait until they agree or fix the odd one out"
        case .preflight(let problems):
            return "preflight failed, nothing was changed:\n" + problems.map { "  - " + $0 }.joined(separator: "\n")
        case .busy(let text):
            return text
        case .journal(let path, let problem):
            return "journal \(path): \(problem)"
        case .copy(let text):
            return "copy: \(text)"
        case .cutoverAborted(let text):
            return "cutover abandoned, the old map keeps serving: \(text)"
        case .cutoverIncomplete(let text):
            return "cutover incomplete: \(text); run `shardctl rebalance --resume` to finish it"
        case .abortNotPossible(let text):
            return "cannot abort: \(text)"
        case .step(let step, let problem):
            return "\(step): \(problem)"
        }
    }
}
