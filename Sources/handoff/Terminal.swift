// Handoff — the terminal under `handoff console`: raw keys, the window size,
// the alternate screen. The one file of the CLI that talks to termios and
// ioctl; the console itself only draws lines of text through it.
//
// No terminal library is used: of the packages available here, console-kit
// and Rainbow colour and clear lines but read input a line at a time, and
// ncurses would need a C shim target of its own for a dozen escape codes.

import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A key the console acts on.
enum Key: Sendable, Equatable {
    case char(Character)
    case up, down, tab, enter, escape, backspace
}

/// The controlling terminal in raw mode, restored on `restore()`.
final class Terminal: Sendable {
    private let original: termios

    /// Puts stdin in raw mode (no echo, no line buffering) and switches to
    /// the alternate screen. Fails when stdin is not a terminal.
    init() throws {
        var settings = termios()
        guard isatty(STDIN_FILENO) == 1, tcgetattr(STDIN_FILENO, &settings) == 0 else {
            throw CommandFailure("handoff console needs a terminal (stdin is not one)")
        }
        original = settings
        var raw = settings
        raw.c_lflag &= ~tcflag_t(ECHO | ICANON | ISIG | IEXTEN)
        raw.c_iflag &= ~tcflag_t(IXON | ICRNL)
        withUnsafeMutableBytes(of: &raw.c_cc) { cc in
            cc[Int(VMIN)] = 1
            cc[Int(VTIME)] = 0
        }
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &raw)
        Terminal.write("\u{1B}[?1049h\u{1B}[?25l")  // alternate screen, cursor hidden
    }

    func restore() {
        var settings = original
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &settings)
        Terminal.write("\u{1B}[?25h\u{1B}[?1049l")
    }

    /// Rows and columns (24 × 80 when the size cannot be read).
    static func size() -> (rows: Int, columns: Int) {
        var size = winsize()
        guard ioctl(STDOUT_FILENO, UInt(TIOCGWINSZ), &size) == 0, size.ws_row > 0, size.ws_col > 0 else { return (24, 80) }
        return (Int(size.ws_row), Int(size.ws_col))
    }

    static func write(_ text: String) {
        var bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeMutableBytes { Glibc.write(STDOUT_FILENO, $0.baseAddress! + offset, $0.count - offset) }
            if written <= 0 { return }
            offset += written
        }
    }

    /// Keys as they are typed, read by a thread of its own (reads block).
    static func keys() -> AsyncStream<Key> {
        AsyncStream { continuation in
            Thread {
                var pending: [UInt8] = []
                var byte: UInt8 = 0
                while read(STDIN_FILENO, &byte, 1) == 1 {
                    pending.append(byte)
                    if let (key, used) = decode(pending) {
                        pending.removeFirst(used)
                        continuation.yield(key)
                    } else if pending.count > 8 {
                        pending.removeAll()
                    }
                }
                continuation.finish()
            }.start()
        }
    }

    /// The key at the start of `bytes` and how many bytes it took, or nil
    /// when more bytes are needed (an escape sequence cut short).
    static func decode(_ bytes: [UInt8]) -> (Key, Int)? {
        guard let first = bytes.first else { return nil }
        switch first {
        case 0x1B:
            if bytes.count == 1 { return nil }
            if bytes[1] == UInt8(ascii: "["), bytes.count >= 3 {
                switch bytes[2] {
                case UInt8(ascii: "A"): return (.up, 3)
                case UInt8(ascii: "B"): return (.down, 3)
                default: return (.escape, 3)
                }
            }
            return bytes[1] == UInt8(ascii: "[") ? nil : (.escape, 1)
        case 0x09: return (.tab, 1)
        case 0x0D, 0x0A: return (.enter, 1)
        case 0x7F, 0x08: return (.backspace, 1)
        case 0x03: return (.char("q"), 1)  // Ctrl-C quits too
        default:
            // A UTF-8 sequence: wait for all of it.
            let length = first < 0x80 ? 1 : first >= 0xF0 ? 4 : first >= 0xE0 ? 3 : 2
            guard bytes.count >= length else { return nil }
            let text = String(decoding: bytes.prefix(length), as: UTF8.self)
            return (.char(text.first ?? " "), length)
        }
    }

    /// Window size changes, as a stream of ticks while the caller keeps `source`
    /// (cancel it when done).
    static func resizes() -> (stream: AsyncStream<Void>, source: any DispatchSourceSignal) {
        let (stream, continuation) = AsyncStream<Void>.makeStream()
        signal(SIGWINCH, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: SIGWINCH)
        source.setEventHandler { continuation.yield() }
        source.resume()
        return (stream, source)
    }
}

extension Terminal {
}
