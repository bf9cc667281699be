// Package migrate plans and executes a move of Docker workloads from a rootful
// daemon to a rootless one. The dry run and the real run share one code path:
// [Plan] computes what would happen, printing it is the dry run, and applying it
// is the migration.
package migrate
