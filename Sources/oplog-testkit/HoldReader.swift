import ArgumentParser
import Foundation
import OpLogStorage

/// Test helper (hidden): opens the store's LMDB file and holds a read transaction until killed, so
/// that the tests can check a killed process's reader slot is cleared on the next open.
struct HoldReader: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hold-reader", abstract: "Hold an LMDB read transaction until killed (tests).", shouldDisplay: false)

    @OptionGroup var storeOption: StoreOption

    func run() async throws {
        var configuration = EnvironmentConfiguration(mapSizeBytes: 1 << 20)
        configuration.readOnly = true
        let environment = try Environment(directory: storeOption.store, configuration: configuration)
        try environment.read { _ in
            FileDescriptorWriter.write("holding\n", to: 1)
            while true { sleep(1) }
        }
    }
}
