// Package observe is the pipeline stage between the judge and the
// outputs that remembers what every probe saw: each fingerprint record is
// written downstream, then kept in the DB as the target's latest
// observation and fingerprint history. Those observations are what a
// retro-hunt reads when a fingerprint is added later: every target that
// carried it within the retro window gets the alert it would have had,
// marked retroactive, through the same outputs.
//
// It is a stage of its own (an enrich.Sink wrapping the next one) rather
// than part of the scheduler, because recording is a side effect of a
// written record, not of scheduling, and the retro-hunt is started by the
// admin API, not by an event.
package observe
