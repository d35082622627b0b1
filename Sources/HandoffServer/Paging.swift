// Handoff — page sizes of the List methods (ListEvents, ListQueue,
// ListPendingApprovals), read as common.proto's "Paging" says.

import HandoffRPC

/// A List request's `page_size` as the protocol defines it (common.proto,
/// "Paging"): 0 is the default of 50, more than `maximum` is lowered to it,
/// negative is INVALID_ARGUMENT.
func pageLimit(_ pageSize: Int32, maximum: Int = 500) throws(RPCError) -> Int {
    guard pageSize >= 0 else {
        throw RPCError(code: .invalidArgument, message: "page_size must not be negative, not \(pageSize)")
    }
    return pageSize == 0 ? min(50, maximum) : min(Int(pageSize), maximum)
}
