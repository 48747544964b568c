/// What `run`/`--resume` and `--abort` do next, decided from the journal alone (pure, testable).
extension RebalanceJournal {
    /// The next step of a run.
    public enum Step: Sendable, Equatable {
        /// Check the tables on the target, copying missing schema.
        case prepareSchema(move: Int)
        /// Create the publication on the source.
        case publish(move: Int)
        /// Create the subscription on the target.
        case subscribe(move: Int)
        /// Wait until every table is copied and the lag is small.
        case catchUp(move: Int)
        /// Pause, drain, flip the map, resume.
        case cutover(move: Int)
        /// A previous run stopped with the slots (maybe) paused and no map sent: release them on every
        /// proxy, then cut over again.
        case releasePause(move: Int)
        /// A previous run stopped while pushing the new map: push it where it is missing, then resume.
        case finishFlip(move: Int)
        /// Drop subscription, publication and slot; delete the moved rows from the source.
        case cleanup(move: Int)
        /// Every move is done.
        case finished
        /// The run was aborted; nothing more to do.
        case wasAborted
    }

    /// The move being worked on: the first one that is neither done nor aborted.
    public var currentMove: Int? {
        self.moves.firstIndex { $0.phase != .done && $0.phase != .aborted }
    }

    /// What a run does next.
    public func nextStep() -> Step {
        if self.state == .aborted { return .wasAborted }
        guard let index = self.currentMove else { return .finished }
        switch self.moves[index].phase {
        case .planned: return .prepareSchema(move: index)
        case .schemaReady: return .publish(move: index)
        case .published: return .subscribe(move: index)
        case .subscribed: return .catchUp(move: index)
        case .caughtUp: return .cutover(move: index)
        case .pausing: return .releasePause(move: index)
        case .flipping: return .finishFlip(move: index)
        case .flipped: return .cleanup(move: index)
        case .done, .aborted: return .finished
        }
    }

    /// What `--abort` does.
    public enum AbortPlan: Sendable, Equatable {
        /// Nothing is in progress (the run finished or was aborted already).
        case nothingToAbort(String)
        /// Undo move `move` (from the phase it reached) and mark it and every later move aborted.
        /// `releasePause` when the slots may be paused on the proxies.
        case undo(move: Int, from: MovePhase, releasePause: Bool)
        /// The move flipped (or may have): the new map may be live. `checkProxies` means it is not known
        /// yet: abort is possible only if no proxy serves the move's new map.
        case afterFlip(move: Int, checkProxies: Bool)
    }

    /// What `--abort` would do with this journal.
    public func abortPlan() -> AbortPlan {
        if self.state == .aborted { return .nothingToAbort("the rebalance \(self.id) was aborted already") }
        guard let index = self.currentMove else {
            return .nothingToAbort("the rebalance \(self.id) finished; every move is live")
        }
        let phase = self.moves[index].phase
        switch phase {
        case .planned, .schemaReady, .published, .subscribed, .caughtUp:
            return .undo(move: index, from: phase, releasePause: false)
        case .pausing:
            return .undo(move: index, from: phase, releasePause: true)
        case .flipping:
            return .afterFlip(move: index, checkProxies: true)
        case .flipped:
            return .afterFlip(move: index, checkProxies: false)
        case .done, .aborted:
            return .nothingToAbort("move \(index + 1) is \(phase.rawValue)")
        }
    }

    /// Where each proxy stands after (part of) a flip: serving the new map, the old map, or unknown.
    public enum ProxyMapState: Sendable, Equatable {
        case new, old, unknown
    }

    /// What to do after pushing the new map (or when resuming a flip), given each proxy's state.
    public enum FlipDecision: Sendable, Equatable {
        /// No proxy has the new map: resume the slots everywhere, the old map keeps serving.
        case rollBack
        /// Every proxy has it: resume the slots everywhere.
        case complete
        /// Some have it: push again to the listed proxies (indexes); keep the slots paused meanwhile.
        case pushAgain([Int])
    }

    /// The flip decision for `states` (one per proxy, in `--proxy` order).
    public static func flipDecision(_ states: [ProxyMapState]) -> FlipDecision {
        if states.allSatisfy({ $0 == .new }) { return .complete }
        if states.allSatisfy({ $0 == .old }) { return .rollBack }
        return .pushAgain(states.indices.filter { states[$0] != .new })
    }
}
