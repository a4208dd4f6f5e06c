// swift-tools-version:5.9
// EdgetuneTrainer: the device contract in Swift, mirroring android_demo/trainer (Kotlin), which
// the repository's suite tests; EdgetuneRuntimes: ONNX Runtime (inputs by name), ExecuTorch
// (inputs by position) and Core ML (mapped feature names) behind the trainer's Runtime protocol.
// Not compiled where this package was written (no Swift toolchain there): `swift test` on macOS
// is its first build.
import PackageDescription

let package = Package(
    name: "EdgetuneTrainer",
    platforms: [.iOS(.v17), .macOS(.v14)],  // Core ML programs are exported for iOS 17 / macOS 14
    products: [
        .library(name: "EdgetuneTrainer", targets: ["EdgetuneTrainer"]),
        .library(name: "EdgetuneRuntimes", targets: ["EdgetuneRuntimes"]),
    ],
    dependencies: [
        .package(url: "https://github.com/microsoft/onnxruntime-swift-package-manager", from: "1.20.0"),
        .package(url: "https://github.com/pytorch/executorch", branch: "swiftpm-1.0.1"),
    ],
    targets: [
        .target(name: "EdgetuneTrainer"),
        .target(name: "EdgetuneRuntimes", dependencies: [
            "EdgetuneTrainer",
            .product(name: "onnxruntime", package: "onnxruntime-swift-package-manager"),
            .product(name: "executorch", package: "executorch"),
            .product(name: "backend_xnnpack", package: "executorch"),
            .product(name: "kernels_optimized", package: "executorch"),
        ]),
        .testTarget(name: "EdgetuneTrainerTests", dependencies: ["EdgetuneTrainer", "EdgetuneRuntimes"]),
    ]
)
