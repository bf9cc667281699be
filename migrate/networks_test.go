package migrate

import (
	"context"
	"net/netip"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/unroot/unroot/inventory"
)

func TestNetworkCreateOptionsBridge(t *testing.T) {
	n := &inventory.Network{
		Name: "demo-net", Driver: "bridge", Internal: true, Attachable: true, IPv6: true,
		Labels:  map[string]string{"com.docker.compose.network": "default"},
		Options: map[string]string{"com.docker.network.bridge.name": "br-demo", "com.docker.network.driver.mtu": "1400"},
		IPAM:    []inventory.Subnet{{Subnet: "172.31.0.0/24", Gateway: "172.31.0.1", IPRange: "172.31.0.128/25", AuxAddress: map[string]string{"h": "172.31.0.2"}}},
	}
	o, err := NetworkCreateOptions(n)
	if err != nil {
		t.Fatal(err)
	}
	if o.Driver != "bridge" || !o.Internal || !o.Attachable || o.EnableIPv6 == nil || !*o.EnableIPv6 {
		t.Errorf("flags lost: %+v", o)
	}
	if _, ok := o.Options["com.docker.network.bridge.name"]; ok {
		t.Error("bridge name carried over")
	}
	if o.Options["com.docker.network.driver.mtu"] != "1400" {
		t.Error("mtu option lost")
	}
	if o.Labels["com.docker.compose.network"] != "default" {
		t.Error("labels lost")
	}
	want := network.IPAMConfig{
		Subnet: netip.MustParsePrefix("172.31.0.0/24"), Gateway: netip.MustParseAddr("172.31.0.1"),
		IPRange: netip.MustParsePrefix("172.31.0.128/25"), AuxAddress: map[string]netip.Addr{"h": netip.MustParseAddr("172.31.0.2")},
	}
	if o.IPAM == nil || len(o.IPAM.Config) != 1 {
		t.Fatalf("ipam = %+v", o.IPAM)
	}
	g := o.IPAM.Config[0]
	if g.Subnet != want.Subnet || g.Gateway != want.Gateway || g.IPRange != want.IPRange || g.AuxAddress["h"] != want.AuxAddress["h"] {
		t.Errorf("ipam config = %+v, want %+v", g, want)
	}
}

func TestNetworkCreateOptionsErrors(t *testing.T) {
	tests := []struct {
		name string
		n    inventory.Network
	}{
		{"macvlan", inventory.Network{Name: "m", Driver: "macvlan"}},
		{"bad subnet", inventory.Network{Name: "b", Driver: "bridge", IPAM: []inventory.Subnet{{Subnet: "nope"}}}},
		{"bad gateway", inventory.Network{Name: "b", Driver: "bridge", IPAM: []inventory.Subnet{{Gateway: "nope"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NetworkCreateOptions(&tt.n); err == nil {
				t.Error("want an error")
			}
		})
	}
}

type fakeNetworks struct {
	have    map[string]bool
	created []string
}

func (f *fakeNetworks) NetworkInspect(_ context.Context, id string, _ client.NetworkInspectOptions) (client.NetworkInspectResult, error) {
	if f.have[id] {
		var r client.NetworkInspectResult
		r.Network.Name = id
		return r, nil
	}
	return client.NetworkInspectResult{}, errdefs.ErrNotFound
}

func (f *fakeNetworks) NetworkCreate(_ context.Context, name string, _ client.NetworkCreateOptions) (client.NetworkCreateResult, error) {
	f.created = append(f.created, name)
	return client.NetworkCreateResult{ID: "id-" + name}, nil
}

func TestEnsureNetwork(t *testing.T) {
	f := &fakeNetworks{have: map[string]bool{"exists": true}}
	tests := []struct {
		n    inventory.Network
		want bool
	}{
		{inventory.Network{Name: "exists", Driver: "bridge"}, false},
		{inventory.Network{Name: "bridge", Driver: "bridge", Builtin: true}, false},
		{inventory.Network{Name: "new", Driver: "bridge"}, true},
	}
	for _, tt := range tests {
		got, err := EnsureNetwork(context.Background(), f, &tt.n)
		if err != nil || got != tt.want {
			t.Errorf("EnsureNetwork(%s) = %v, %v; want %v", tt.n.Name, got, err, tt.want)
		}
	}
	if len(f.created) != 1 || f.created[0] != "new" {
		t.Errorf("created %q", f.created)
	}
}
