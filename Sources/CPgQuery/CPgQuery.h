// libpg_query (Debian libpg-query-dev): PostgreSQL's own parser as a library.
#ifndef SHARDGATE_CPGQUERY_H
#define SHARDGATE_CPGQUERY_H
#include <pg_query.h>
#endif
