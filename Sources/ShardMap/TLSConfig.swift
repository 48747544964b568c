import Foundation

/// TLS for client connections (the `tls` section).
public struct TLSConfig: Sendable, Equatable {
    /// PEM certificate chain; relative paths in a loaded file are resolved against the map's directory.
    public var certPath: String
    /// PEM private key; relative paths in a loaded file are resolved against the map's directory.
    public var keyPath: String

    /// Creates a TLS configuration.
    public init(certPath: String, keyPath: String) {
        self.certPath = certPath
        self.keyPath = keyPath
    }
}
