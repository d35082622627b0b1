// swift-tools-version:6.2
// Handoff — the libFuzzer target over HandoffProto's decoders. A package of its
// own because a fuzz target has no `main` and links only with
// `swift build -c release --sanitize=fuzzer -Xswiftc -parse-as-library`
// (see `make fuzz` and scripts/fuzz).
import PackageDescription

let package = Package(
    name: "HandoffFuzz",
    dependencies: [.package(name: "Handoff", path: "../..")],
    targets: [
        .executableTarget(
            name: "HandoffProtoFuzz",
            dependencies: [.product(name: "HandoffProto", package: "Handoff")],
            path: "HandoffProtoFuzz",
            swiftSettings: [.swiftLanguageMode(.v6)]
        )
    ]
)
