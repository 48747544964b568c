import PGWire
import Testing

@testable import ProxyCore

/// Where each answer ends, per PostgreSQL's protocol rules.
@Suite struct ResponseTrackerTests {
    static func id(_ id: BackendMessageID) -> UInt8 { id.rawValue }

    /// Every in-flight message has one entry: they stay two words.
    @Test func anEntryIsSixteenBytes() {
        #expect(MemoryLayout<ResponseTracker.Expected>.stride == 16)
    }

    @Test func aQueryEndsAtReadyForQueryNotAtItsErrors() {
        var tracker = ResponseTracker()
        tracker.append(.init(.query, .relay))
        for message: BackendMessageID in [.rowDescription, .dataRow, .commandComplete, .errorResponse, .noticeResponse] {
            #expect(tracker.receive(Self.id(message)) == .init(disposition: .relay, completed: nil))
        }
        #expect(tracker.receive(Self.id(.readyForQuery)).completed?.kind == .query)
        #expect(tracker.isEmpty)
    }

    @Test func extendedMessagesEndAtTheirOwnAnswers() {
        var tracker = ResponseTracker()
        let kinds: [ResponseTracker.Expected.Kind] = [.parse, .bind, .describePortal, .execute, .close, .sync]
        for kind in kinds { tracker.append(.init(kind, .relay)) }
        let answers: [BackendMessageID] = [.parseComplete, .bindComplete, .rowDescription, .dataRow, .commandComplete,
                                           .closeComplete, .readyForQuery]
        var completed: [ResponseTracker.Expected.Kind] = []
        for answer in answers {
            if let done = tracker.receive(Self.id(answer)).completed { completed.append(done.kind) }
        }
        #expect(completed == kinds)
    }

    @Test func anErrorInABatchSkipsEverythingUpToSync() {
        var tracker = ResponseTracker()
        for kind: ResponseTracker.Expected.Kind in [.parse, .bind, .execute, .bind, .execute, .sync] {
            tracker.append(.init(kind, .relay))
        }
        #expect(tracker.receive(Self.id(.parseComplete)).completed?.kind == .parse)
        let step = tracker.receive(Self.id(.errorResponse))
        #expect(step.completed?.kind == .bind)
        #expect(step.skipped == 3)
        #expect(tracker.first?.kind == .sync)
        #expect(tracker.receive(Self.id(.readyForQuery)).completed?.kind == .sync)
    }

    @Test func theAnswerOfAnInjectedMessageHasItsDisposition() {
        var tracker = ResponseTracker()
        tracker.append(.init(.parse, .swallow, statement: 7))
        tracker.append(.init(.bind, .relay))
        let parse = tracker.receive(Self.id(.parseComplete))
        #expect(parse.disposition == .swallow)
        #expect(parse.completed?.statement == 7)
        #expect(tracker.receive(Self.id(.bindComplete)).disposition == .relay)
    }

    @Test func aDescribeOfAStatementEndsAtItsRowDescriptionOrNoData() {
        var tracker = ResponseTracker()
        tracker.append(.init(.describeStatement, .relay))
        tracker.append(.init(.describeStatement, .relay))
        #expect(tracker.receive(Self.id(.parameterDescription)).completed == nil)
        #expect(tracker.receive(Self.id(.rowDescription)).completed != nil)
        #expect(tracker.receive(Self.id(.parameterDescription)).completed == nil)
        #expect(tracker.receive(Self.id(.noData)).completed != nil)
        #expect(tracker.isEmpty)
    }

    @Test func withNothingInFlightAsynchronousMessagesAreRelayed() {
        var tracker = ResponseTracker()
        #expect(tracker.receive(Self.id(.notificationResponse)) == .init(disposition: .relay, completed: nil))
    }
}
