import Testing

@testable import ProxyCore

@Suite struct SessionParametersTests {
    let defaults = Fixture.backendDefaults

    // MARK: from the startup packet

    @Test func startupKeysThatAreNotParametersAreDropped() {
        let parameters = SessionParameters(startup: [
            ("user", "alice"), ("database", "app"), ("options", "-c geqo=off"), ("replication", "false"),
            ("application_name", "psql"), ("client_encoding", "UTF8"),
        ])
        #expect(parameters.values == ["application_name": "psql", "client_encoding": "UTF8", "geqo": "off"])
    }

    @Test func optionsAreReadAsPostgreSQLReadsThem() {
        let parameters = SessionParameters(startup: [
            ("options", "-c search_path=app,public --statement-timeout=5s -cwork_mem=8MB -c application_name=a\\ b"),
            ("_pq_.some_extension", "on"),
        ])
        #expect(parameters.values == ["search_path": "app,public", "statement_timeout": "5s", "work_mem": "8MB",
                                      "application_name": "a b"])
    }

    @Test func stateAfterSynchronizationIsWhatTheBackendHolds() {
        var backend = self.defaults
        backend["application_name"] = "previous"
        backend["search_path"] = "old"   // set by the proxy for a previous client; never reported
        let parameters = SessionParameters(values: ["TimeZone": "Asia/Tokyo"])
        let after = parameters.stateAfterSynchronization(backend: backend, backendDefaults: self.defaults)
        #expect(after["TimeZone"] == "Asia/Tokyo")
        #expect(after["application_name"] == self.defaults["application_name"])
        #expect(after["search_path"] == nil)
        #expect(parameters.synchronization(backend: after, backendDefaults: self.defaults) == nil)
        #expect(parameters.synchronization(backend: backend, backendDefaults: self.defaults)
                == "SELECT pg_catalog.set_config('TimeZone', 'Asia/Tokyo', false); RESET \"application_name\"; RESET \"search_path\"")
    }

    @Test(arguments: [
        ("datestyle", "DateStyle"), ("DATESTYLE", "DateStyle"), ("DateStyle", "DateStyle"),
        ("timezone", "TimeZone"), ("TimeZone", "TimeZone"), ("intervalstyle", "IntervalStyle"),
        ("application_name", "application_name"), ("search_path", "search_path"),
    ])
    func namesAreCanonicalizedAsParameterStatusSpellsThem(sent: String, canonical: String) {
        let parameters = SessionParameters(startup: [(sent, "x")])
        #expect(parameters.values == [canonical: "x"])
    }

    @Test func aStartupDateStyleMatchesTheBackendsReportedName() {
        var backend = self.defaults
        backend["DateStyle"] = "ISO, DMY"
        let parameters = SessionParameters(startup: [("datestyle", "ISO, DMY")])
        #expect(parameters.synchronization(backend: backend, backendDefaults: self.defaults) == nil)
    }

    // MARK: synchronization SQL

    @Test func nothingToDoWhenTheBackendAlreadyMatches() {
        let parameters = SessionParameters(values: ["application_name": "psql", "TimeZone": "UTC"])
        var backend = self.defaults
        backend["application_name"] = "psql"
        #expect(parameters.synchronization(backend: backend, backendDefaults: self.defaults) == nil)
        #expect(SessionParameters().synchronization(backend: self.defaults, backendDefaults: self.defaults) == nil)
    }

    @Test func differingValuesAreSetInNameOrder() {
        let parameters = SessionParameters(values: ["TimeZone": "Europe/Paris", "application_name": "psql", "DateStyle": "ISO, MDY"])
        #expect(parameters.synchronization(backend: self.defaults, backendDefaults: self.defaults)
                == "SELECT pg_catalog.set_config('TimeZone', 'Europe/Paris', false), pg_catalog.set_config('application_name', 'psql', false)")
    }

    @Test func parametersAPreviousClientChangedAreReset() {
        var backend = self.defaults
        backend["application_name"] = "someone else"
        backend["IntervalStyle"] = "iso_8601"
        let parameters = SessionParameters(values: ["TimeZone": "UTC"])
        #expect(parameters.synchronization(backend: backend, backendDefaults: self.defaults)
                == "RESET \"IntervalStyle\"; RESET \"application_name\"")
    }

    @Test func setAndResetTogether() {
        var backend = self.defaults
        backend["application_name"] = "someone else"
        let parameters = SessionParameters(values: ["TimeZone": "Asia/Tokyo"])
        #expect(parameters.synchronization(backend: backend, backendDefaults: self.defaults)
                == "SELECT pg_catalog.set_config('TimeZone', 'Asia/Tokyo', false); RESET \"application_name\"")
    }

    @Test func valuesTheClientCannotSetAreNeverReset() {
        var backend = self.defaults
        backend["server_version"] = "18.0"
        backend["is_superuser"] = "on"
        #expect(SessionParameters().synchronization(backend: backend, backendDefaults: self.defaults) == nil)
    }

    @Test func aParameterMissingFromTheDefaultsIsReset() {
        var backend = self.defaults
        backend["application_name"] = "x"
        var defaults = self.defaults
        defaults["application_name"] = nil
        #expect(SessionParameters().synchronization(backend: backend, backendDefaults: defaults) == "RESET \"application_name\"")
    }

    @Test func aParameterTheBackendDoesNotReportIsSet() {
        let parameters = SessionParameters(startup: [("search_path", "app, public")])
        #expect(parameters.synchronization(backend: self.defaults, backendDefaults: self.defaults)
                == "SELECT pg_catalog.set_config('search_path', 'app, public', false)")
    }

    // MARK: quoting

    @Test(arguments: [
        ("plain", "'plain'"),
        ("it's", "'it''s'"),
        ("''", "''''''"),
        ("C:\\temp", "E'C:\\\\temp'"),
        ("a'b\\c", "E'a''b\\\\c'"),
        ("", "''"),
        ("ünïcødé", "'ünïcødé'"),
    ])
    func literalsAreQuoted(value: String, quoted: String) {
        #expect(SessionParameters.quoteLiteral(value) == quoted)
        let sql = SessionParameters(values: ["application_name": value]).synchronization(backend: [:], backendDefaults: [:])
        #expect(sql == "SELECT pg_catalog.set_config('application_name', \(quoted), false)")
    }

    @Test(arguments: [
        ("application_name", "\"application_name\""),
        ("my\"param", "\"my\"\"param\""),
        ("myext.setting", "\"myext.setting\""),
    ])
    func namesAreQuoted(name: String, quoted: String) {
        #expect(SessionParameters.quoteIdentifier(name) == quoted)
    }

    @Test func hostileNameAndValueStayInsideTheirQuotes() {
        let parameters = SessionParameters(values: ["x\"; DROP TABLE t; --": "'; DROP TABLE t; --"])
        #expect(parameters.synchronization(backend: [:], backendDefaults: [:])
                == "SELECT pg_catalog.set_config('x\"; DROP TABLE t; --', '''; DROP TABLE t; --', false)")
    }

    // MARK: following ParameterStatus

    @Test func observedChangesOfSettableParametersAreKept() {
        var parameters = SessionParameters(startup: [("application_name", "psql")])
        parameters.observe(name: "application_name", value: "batch")
        parameters.observe(name: "TimeZone", value: "Europe/Berlin")
        parameters.observe(name: "server_version", value: "17.4")
        parameters.observe(name: "is_superuser", value: "on")
        #expect(parameters.values == ["application_name": "batch", "TimeZone": "Europe/Berlin"])
    }

    @Test func observedValueOfAParameterTheClientSetIsKeptEvenIfNotUsuallySettable() {
        // The client asked for it at startup; the server's spelling of the value wins.
        var parameters = SessionParameters(startup: [("search_path", "app")])
        parameters.observe(name: "search_path", value: "\"app\"")
        #expect(parameters.values == ["search_path": "\"app\""])
    }

    @Test func observedValueEqualToTheBackendNeedsNoSync() {
        var parameters = SessionParameters(startup: [("client_encoding", "utf8")])
        var backend = self.defaults
        #expect(parameters.synchronization(backend: backend, backendDefaults: self.defaults) == "SELECT pg_catalog.set_config('client_encoding', 'utf8', false)")
        // PostgreSQL reports the canonical spelling after the SET.
        parameters.observe(name: "client_encoding", value: "UTF8")
        backend["client_encoding"] = "UTF8"
        #expect(parameters.synchronization(backend: backend, backendDefaults: self.defaults) == nil)
    }
}
