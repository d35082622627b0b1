// Handoff — Admin.Backup: an online copy of the store, streamed to a
// global admin while the server goes on serving.

import Crypto
import Foundation
import HandoffCore
import HandoffProto
import HandoffRPC
import Synchronization

extension MethodRegistry {
    /// Registers `handoff.v1.Admin/Backup`. The store makes its copy beside
    /// itself; it is streamed in pieces, then removed; the last message
    /// carries its size and SHA-256.
    mutating func registerBackup(store: any Store) {
        // One at a time: each copy takes as much room as the store, on its volume.
        let running = Atomic<Bool>(false)
        register(Admin.backup) { request, _, writer in
            let size = request.chunkBytes == 0 ? 1 << 20 : Int(request.chunkBytes)
            guard (4096...(1 << 20)).contains(size) else {
                throw RPCError(code: .invalidArgument, message: "chunk_bytes is \(request.chunkBytes); it must be 0 (1 MiB) or from 4096 to 1048576")
            }
            guard running.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged else {
                throw RPCError(
                    code: .aborted,
                    message: "another backup is running (each makes a copy as large as the store on its volume); retry when it has ended")
            }
            defer { running.store(false, ordering: .releasing) }
            let path: String
            let format: String
            do throws(StoreError) {
                (path, format) = try await store.backupCopy()
            } catch {
                if case .full = error {
                    throw RPCError(
                        code: .resourceExhausted,
                        message: "no space left on the data volume for the backup copy (it is made there first); free space and retry")
                }
                throw RPCError(code: .unavailable, message: "the backup could not be made: \(error)")
            }
            defer { unlink(path) }
            guard let file = FileHandle(forReadingAtPath: path) else {
                throw RPCError(code: .internalError, message: "the backup copy could not be read back")
            }
            defer { try? file.close() }
            var hasher = SHA256()
            var total: Int64 = 0
            while true {
                try Task.checkCancellation()
                let piece: Data
                do {
                    // Off the connection's event loop: a read from disk blocks.
                    piece = try await withTaskExecutorPreference(globalConcurrentExecutor) { try file.read(upToCount: size) ?? Data() }
                } catch {
                    throw RPCError(code: .internalError, message: "the backup copy could not be read back: \(error)")
                }
                if piece.isEmpty { break }
                hasher.update(data: piece)
                total += Int64(piece.count)
                try await writer.write(BackupChunk(data: Array(piece)))
            }
            try await writer.write(BackupChunk(totalBytes: total, sha256: Array(hasher.finalize()), format: format))
        }
    }
}
