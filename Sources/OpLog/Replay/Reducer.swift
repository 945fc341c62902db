/// Turns ops into document state. The caller implements it; OpLog stores the encoded state as
/// snapshots and replays ops through `apply`.
///
/// A reducer runs outside LMDB transactions: replay reads a batch of ops, ends the read, then
/// calls `apply`, so a slow reducer never pins LMDB pages.
public protocol Reducer: Sendable {
    /// The document state the reducer builds.
    associatedtype State
    /// The state before revision 1.
    func initialState() -> State
    /// Applies one op. Throwing stops replay with `OpLogError.reducerFailed` at that revision.
    func apply(_ op: StoredOp, to state: inout State) throws
    /// Applies one op read in place from its chunk: what replay calls. The default copies the op
    /// into a `StoredOp` and calls `apply(_:to:)`; implement this one to replay without an
    /// allocation per op (then `apply(_:to:)` can forward to it with `StoredOpView(op)`).
    func apply(_ op: StoredOpView, to state: inout State) throws
    /// Snapshot bytes for a state.
    func encode(_ state: State) throws -> [UInt8]
    /// The state stored in snapshot bytes.
    func decode(_ bytes: [UInt8]) throws -> State
}

extension Reducer {
    public func apply(_ op: StoredOpView, to state: inout State) throws {
        try apply(op.storedOp, to: &state)
    }
}
