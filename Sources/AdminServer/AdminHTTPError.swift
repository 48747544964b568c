import Foundation
import Hummingbird
import ProxyCore
import ShardMap

/// An admin-port error: a status and a message, sent as `{"error": "..."}`.
struct AdminHTTPError: HTTPResponseError {
    var status: HTTPResponse.Status
    var message: String
    var headers: HTTPFields = [:]

    init(_ status: HTTPResponse.Status, _ message: String, headers: HTTPFields = [:]) {
        self.status = status
        self.message = message
        self.headers = headers
    }

    func response(from request: Request, context: some RequestContext) throws -> Response {
        var response = AdminResponse.json(AdminJSON.Message(error: self.message), status: self.status)
        for field in self.headers {
            response.headers.append(field)
        }
        return response
    }

    /// How a backend refusal is answered.
    init(_ error: AdminError) {
        switch error.kind {
        case .invalid: self.init(.badRequest, error.message)
        case .conflict: self.init(.conflict, error.message)
        case .unavailable: self.init(.serviceUnavailable, error.message)
        }
    }
}

/// Turns every error into a JSON body: Hummingbird's own (`404` for an unknown path, `413` for a body
/// that is too large), backend refusals, and anything unexpected (500, with the error's text).
struct AdminErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    /// Known paths and their methods, to answer 405 with `Allow` for a known path and a wrong method.
    let routes: [String: [HTTPRequest.Method]]

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
        -> Response
    {
        do {
            return try await next(request, context)
        } catch let error as AdminHTTPError {
            return try error.response(from: request, context: context)
        } catch let error as AdminError {
            return try AdminHTTPError(error).response(from: request, context: context)
        } catch let error as ShardMapError {
            return try AdminHTTPError(.badRequest, error.description).response(from: request, context: context)
        } catch let error as HTTPError {
            return try self.translate(error, request: request).response(from: request, context: context)
        } catch {
            context.logger.warning("admin request failed", metadata: ["path": "\(request.uri.path)", "error": "\(error)"])
            return try AdminHTTPError(.internalServerError, "internal error: \(error)").response(from: request, context: context)
        }
    }

    private func translate(_ error: HTTPError, request: Request) -> AdminHTTPError {
        let path = request.uri.path
        if error.status == .notFound {
            if let methods = self.routes[path] {
                let allowed = methods.map(\.rawValue).joined(separator: ", ")
                return AdminHTTPError(.methodNotAllowed, "\(request.method.rawValue) is not supported on \(path); use \(allowed)",
                                      headers: [.allow: allowed])
            }
            let known = self.routes.keys.sorted().joined(separator: ", ")
            return AdminHTTPError(.notFound, "no such endpoint: \(request.method.rawValue) \(path) (endpoints: \(known))")
        }
        return AdminHTTPError(error.status, error.body ?? error.status.reasonPhrase)
    }
}
