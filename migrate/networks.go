package migrate

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/unroot/unroot/inventory"
)

// NetworkCreator is the part of the target daemon's API that network
// re-creation uses.
type NetworkCreator interface {
	NetworkInspect(ctx context.Context, networkID string, options client.NetworkInspectOptions) (client.NetworkInspectResult, error)
	NetworkCreate(ctx context.Context, name string, options client.NetworkCreateOptions) (client.NetworkCreateResult, error)
}

// hostSpecificNetworkOptions are bridge driver options that name host
// objects; carried over they could clash with the rootful daemon's bridge, and
// the rootless daemon picks its own.
var hostSpecificNetworkOptions = []string{
	"com.docker.network.bridge.name",
	"com.docker.network.bridge.host_binding_ipv4",
}

// NetworkCreateOptions returns the options that re-create the user-defined
// network n in the target: the same driver, labels, internal, attachable,
// IPv6 and IPAM settings, and its driver options minus those that name host
// objects (the bridge interface name).
func NetworkCreateOptions(n *inventory.Network) (client.NetworkCreateOptions, error) {
	if n.Driver != "bridge" {
		return client.NetworkCreateOptions{}, fmt.Errorf("network %s: driver %q is not supported by a rootless daemon", n.Name, n.Driver)
	}
	o := client.NetworkCreateOptions{
		Driver:     n.Driver,
		Internal:   n.Internal,
		Attachable: n.Attachable,
		Labels:     cloneMap(n.Labels),
		Options:    cloneMap(n.Options),
	}
	for _, k := range hostSpecificNetworkOptions {
		delete(o.Options, k)
	}
	if len(o.Options) == 0 {
		o.Options = nil
	}
	if n.IPv6 {
		t := true
		o.EnableIPv6 = &t
	}
	if len(n.IPAM) > 0 || len(n.IPAMOptions) > 0 || (n.IPAMDriver != "" && n.IPAMDriver != "default") {
		ipam := &network.IPAM{Driver: n.IPAMDriver, Options: cloneMap(n.IPAMOptions)}
		for _, s := range n.IPAM {
			var c network.IPAMConfig
			var err error
			if s.Subnet != "" {
				if c.Subnet, err = netip.ParsePrefix(s.Subnet); err != nil {
					return o, fmt.Errorf("network %s: subnet: %w", n.Name, err)
				}
			}
			if s.IPRange != "" {
				if c.IPRange, err = netip.ParsePrefix(s.IPRange); err != nil {
					return o, fmt.Errorf("network %s: ip range: %w", n.Name, err)
				}
			}
			if s.Gateway != "" {
				if c.Gateway, err = netip.ParseAddr(s.Gateway); err != nil {
					return o, fmt.Errorf("network %s: gateway: %w", n.Name, err)
				}
			}
			for k, v := range s.AuxAddress {
				a, err := netip.ParseAddr(v)
				if err != nil {
					return o, fmt.Errorf("network %s: aux address %s: %w", n.Name, k, err)
				}
				if c.AuxAddress == nil {
					c.AuxAddress = map[string]netip.Addr{}
				}
				c.AuxAddress[k] = a
			}
			ipam.Config = append(ipam.Config, c)
		}
		o.IPAM = ipam
	}
	return o, nil
}

// EnsureNetwork creates the user-defined network n in dst unless a network
// of that name exists there; built-in networks (bridge, host, none) are never
// created. It reports whether it created the network.
func EnsureNetwork(ctx context.Context, dst NetworkCreator, n *inventory.Network) (bool, error) {
	if n.Builtin {
		return false, nil
	}
	res, err := dst.NetworkInspect(ctx, n.Name, client.NetworkInspectOptions{})
	if err == nil && res.Network.Name == n.Name {
		return false, nil
	}
	if err != nil && !inventory.IsNotFound(err) {
		return false, fmt.Errorf("inspect network %s in target: %w", n.Name, err)
	}
	o, err := NetworkCreateOptions(n)
	if err != nil {
		return false, err
	}
	if _, err := dst.NetworkCreate(ctx, n.Name, o); err != nil {
		return false, fmt.Errorf("create network %s in target: %w", n.Name, err)
	}
	return true, nil
}
