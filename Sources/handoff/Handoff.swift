// Handoff — `handoff`, the command-line client.

import ArgumentParser
import HandoffVersion

@main
struct Handoff: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "handoff",
        abstract: "Command-line client of a Handoff server.",
        discussion: Environment.help,
        version: HandoffVersion.description,
        subcommands: [
            Certs.self, Ping.self, SessionCommand.self,
            // The agent's side, for trying things out from a shell.
            AssessCommand.self, EscalateCommand.self, ConfirmCommand.self, AnswerCommand.self, CodeCommand.self, WaitCommand.self,
            ExecutedCommand.self,
            AuditCommand.self, PolicyCommand.self, Tokens.self, DeskCommand.self,
            ApprovalsCommand.self, WatchCommand.self, ConsoleCommand.self, QueueCommand.self, TicketCommand.self,
            ClaimCommand.self, ReplyCommand.self, ResolveCommand.self, ApproveCommand.self, RejectCommand.self, StatsCommand.self,
            ReviewsCommand.self, AdminCommand.self,
        ]
    )
}
