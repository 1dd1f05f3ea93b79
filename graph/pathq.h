/*
 * pathq.h - the path statements of the query language, answered from the causal graph:
 *
 *   ROOTCAUSE OF 'key' [STEPS n]
 *   ANCESTORS OF 'key' [DEPTH n] [LIMIT n]      causes of the node, to n hops (default 6)
 *   DESCENDANTS OF 'key' [DEPTH n] [LIMIT n]    effects of the node
 *   PATH FROM 'key' TO 'key' [MAX n]            the shortest causal path between two nodes,
 *                                               in whichever direction it runs
 *
 * 'key' is a transaction id, trace id, span id, conn:<hex>, pid:<n>, or #<node id>. Keywords
 * are case-insensitive. Results have the shape of SELECT results (same writers: JSON, NDJSON,
 * CSV); errors carry a message and the byte position.
 */
#ifndef KP_PATHQ_H
#define KP_PATHQ_H

#include <stddef.h>

struct gstore;
struct query_result;
struct query_error;

/* Whether text starts with a path statement keyword (after blanks). */
int pathq_is(const char *text, size_t len);

/*
 * Runs a path statement. max_steps bounds ROOTCAUSE (engine.rootCauseMaxSteps by default).
 * Returns 0 with *out, or -EINVAL (syntax, position in err) / -ENOENT (unknown key) / other
 * -errno with err->message set.
 */
int pathq_exec(struct gstore *g, const char *text, size_t len, int max_steps,
	       struct query_result **out, struct query_error *err);

#endif
