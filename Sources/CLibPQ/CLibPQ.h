// libpq (Debian libpq-dev): PostgreSQL's client library, for shardctl.
#ifndef SHARDGATE_CLIBPQ_H
#define SHARDGATE_CLIBPQ_H
#include <postgresql/libpq-fe.h>
#endif
