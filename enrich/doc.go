// Package enrich turns sensor events into judged probe results: the scope
// filter, the dedup cache, the probe scheduler and the delivery ledger,
// and the hand-off to the DB matcher, the rules and the outputs.
//
// Why "enrich": that is what happens to an event here, it gains a probe
// result and a verdict; scope, dedup, scheduling and the ledger are the
// means. The name predates the scheduler and is kept on purpose: those four
// parts share one state (a target's units, waiters and budgets), so they
// stay one package, and a name for one of them (scheduler, dedup) would
// describe less of it than this one does. The observation side effect and
// the outputs live downstream (observe, output), not here.
//
// It declares what it needs from those as small interfaces (Prober,
// Matcher, Judge, Sink, StateStore); the daemon wires the real ones.
//
// # Scheduling rules
//
// Every event gets a verdict; only Config.MaxWait may end one unjudged
// (status expired, counted and recorded).
//
//   - Units. A server (ip, port) is probed once for the server-level kinds
//     (JARM with the IP literal, ATSF with the first name seen) plus the
//     name-level kinds of that first name; every further name (ip, port,
//     sni) gets a name probe (certificate and HTTP, one connection).
//     Events for a unit in flight wait for it (coalescing).
//   - Two-phase verdicts. An event whose server is known but whose name
//     probe is not done is judged at once with the server-level result;
//     when the name completes it, only the rules that did not fire are
//     run again (Judge.JudgeRest).
//   - Fair order. fairQueue: round-robin over client hosts, within a
//     client over destination IPs, FIFO per IP. An IP whose connection
//     bucket cannot pay for its head unit sleeps in a heap until it can:
//     it costs neither turns nor global budget.
//   - Budgets in connections. Per IP: the whole unit's cost is taken at
//     dispatch. Globally: a server probe pays one connection at dispatch
//     and the rest when its first ClientHello is answered (payRest, with
//     priority over new probes); while no answer is due for longer than
//     AnswerGrace it counts its full cost as owed. Unused connections are
//     refunded. So a tarpit costs one connection and one probe slot for an
//     I/O timeout, and its IP is remembered and retried with a short
//     deadline.
//   - Dedup cache. Every judged target (server or name) is one 32-byte
//     entry in Index: two independent hashes of its exact key (96 bits),
//     its expiry (TTL for a success, NegativeTTL otherwise, to the
//     nanosecond), flags and LRU links, in memory outside the Go heap;
//     at Capacity the least recently used goes. Out-of-scope verdicts are
//     the entry alone. The full results (and matches) of the HotResults
//     most recently used stay in memory; the others live in the
//     ResultStore (the daemon: ResultFile, one block per index entry,
//     read with pread) with their matches, and are read back on their
//     next event, their key, expiry and exact target compared (matched
//     again only if the DB changed since): a hash collision, a stale or a
//     lost record costs a probe, never another target's verdict. Units queued or being probed are kept by exact key apart
//     from the index (never evicted). A scope change marks every entry
//     to be checked against the new policy at its next hit.
//   - Memory and disk. At most MemEvents events wait in memory; past it,
//     the events of clients holding more than their share are spilled
//     (the ledger writes them to the DB backlog at its next commit and
//     forgets them) and loaded back round-robin by client as room frees.
//     At BacklogMax, Handle blocks: the inputs pause, nothing is lost.
package enrich
