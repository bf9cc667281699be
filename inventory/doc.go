// Package inventory reads a Docker daemon: containers with their full
// configuration, the images they use, named volumes, bind mounts, networks and
// compose projects. It talks to the daemon through [API], a narrow interface
// over github.com/moby/moby/client, so tests can feed it recorded inspect JSON.
//
// [Read] returns an [Inventory] of its own types (snake_case JSON), not the
// client's: the planner gets one shape whatever the daemon's API version.
// Daemons older than API 1.44 (Debian 12's docker 20.10 speaks 1.41) put some
// fields elsewhere or send fields the current types dropped; Read smooths
// that over — it reads Config.MacAddress from the raw JSON, drops the short
// container ID that old daemons add to network aliases, and treats a network
// without EnableIPv4 as having IPv4. Each [Container] keeps the daemon's raw
// inspect JSON for anything else.
//
// It only reads. It never changes an object in any daemon; planning what to do
// with what it found is package migrate's job. Use [ReadImages] to ask the
// target daemon which images it already has.
package inventory
