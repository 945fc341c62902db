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
    /// Snapshot bytes for a state.
    func encode(_ state: State) throws -> [UInt8]
    /// The state stored in snapshot bytes.
    func decode(_ bytes: [UInt8]) throws -> State
}
