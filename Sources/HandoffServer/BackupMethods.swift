// Handoff — Admin.Backup: an online copy of the store, streamed to a
// global admin while the server goes on serving.

import Crypto
import Foundation
import HandoffCore
import HandoffProto
import HandoffRPC

extension MethodRegistry {
    /// Registers `handoff.v1.Admin/Backup`. The store makes its copy beside
    /// itself; it is streamed in pieces, then removed; the last message
    /// carries its size and SHA-256.
    mutating func registerBackup(store: any Store) {
        register(Admin.backup) { request, _, writer in
            let size = request.chunkBytes == 0 ? 1 << 20 : Int(request.chunkBytes)
            guard (4096...(1 << 20)).contains(size) else {
                throw RPCError(code: .invalidArgument, message: "chunk_bytes is \(request.chunkBytes); it must be 0 (1 MiB) or from 4096 to 1048576")
            }
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
                    piece = try file.read(upToCount: size) ?? Data()
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
