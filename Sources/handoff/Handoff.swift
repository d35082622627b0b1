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
            AuditCommand.self, PolicyCommand.self, Tokens.self,
            // The desks: one name each.
            DeskCommand.Queue.self, DeskCommand.Show.self, DeskCommand.Claim.self, DeskCommand.Reply.self, DeskCommand.Resolve.self,
            ApprovalsCommand.self, ApprovalsCommand.Approve.self, ApprovalsCommand.Reject.self,
            WatchCommand.self, ConsoleCommand.self, StatsCommand.self,
            ReviewsCommand.self, AdminCommand.self,
        ]
    )
}
