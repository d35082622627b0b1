// Handoff — writes the commit the binaries are built from into HandoffVersion.
//
// A prebuild command (it runs before every build) calls scripts/build-info,
// which rewrites the generated file only when the commit changed, so an
// unchanged tree does not recompile anything.

import Foundation
import PackagePlugin

@main
struct BuildInfo: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: any Target) throws -> [Command] {
        let output = context.pluginWorkDirectoryURL.appending(path: "generated")
        let script = context.package.directoryURL.appending(path: "scripts/build-info")
        return [
            .prebuildCommand(
                displayName: "Handoff build info (commit)",
                executable: URL(fileURLWithPath: "/bin/sh"),
                arguments: [script.path, context.package.directoryURL.path, output.appending(path: "BuildCommit.swift").path],
                outputFilesDirectory: output)
        ]
    }
}
