package e2e

import (
	"strings"
	"testing"
)

// TestMigrateContainerReferences migrates a db with a volume, a client that
// links to it and takes its volumes (--link, --volumes-from) and a sidecar
// in its network namespace (--network container:db): in the target those
// references name the migrated db, not the source's IDs.
func TestMigrateContainerReferences(t *testing.T) {
	const (
		db      = "e2e-mig-ref-db"
		client  = "e2e-mig-ref-client"
		sidecar = "e2e-mig-ref-sidecar"
		vol     = "e2e-mig-ref-vol"
	)
	e := newMigEnv(t, []string{sidecar, client, db}, []string{vol}, nil)
	e.Docker(t, false, "run", "-d", "--name", db, "-v", vol+":/shared", e.Image, "sh", "-c", "echo from-db > /shared/f && exec sleep 100000")
	e.Docker(t, false, "run", "-d", "--name", client, "--link", db+":dbalias", "--volumes-from", db+":ro", e.Image, "sleep", "100000")
	e.Docker(t, false, "run", "-d", "--name", sidecar, "--network", "container:"+db, e.Image, "sleep", "100000")

	e.mustMigrate(db, client, sidecar)

	dbID := e.inspect(true, db, "{{.Id}}")
	if got := e.inspect(true, sidecar, "{{.HostConfig.NetworkMode}}"); got != "container:"+db && got != "container:"+dbID {
		t.Errorf("sidecar network mode in the target = %q, want the migrated db", got)
	}
	if a, b := e.exec(true, sidecar, "hostname"), e.exec(true, db, "hostname"); a != b {
		t.Errorf("sidecar hostname %q, db %q: not in one namespace", a, b)
	}
	if got := e.exec(true, client, "cat", "/shared/f"); got != "from-db" {
		t.Errorf("volumes-from in the target reads %q", got)
	}
	if hosts := e.exec(true, client, "cat", "/etc/hosts"); !strings.Contains(hosts, "dbalias") {
		t.Errorf("link alias missing from the client's /etc/hosts:\n%s", hosts)
	}
}
