/// SASL mechanism names as they appear in AuthenticationSASL and SASLInitialResponse.
public enum SCRAMMechanism {
    /// The mechanism both exchange types implement.
    public static let sha256 = "SCRAM-SHA-256"
    /// The channel-binding variant; not implemented, listed so callers can recognise and skip it.
    public static let sha256Plus = "SCRAM-SHA-256-PLUS"
}
