/// The HTTP admin port (placeholder until it lands).
enum AdminServerPlaceholder {}
