/*
 * tables.h - the causal graph as query-language tables: FROM spans, FROM nodes, FROM edges
 * (columns documented in tables.c and in `SELECT * FROM nodes LIMIT 1`).
 */
#ifndef KP_GRAPH_TABLES_H
#define KP_GRAPH_TABLES_H

struct store;
struct gstore;

/* Registers the three tables on st, reading from g (which must outlive st). 0 or -errno. */
int graph_tables_register(struct store *st, struct gstore *g);

#endif
