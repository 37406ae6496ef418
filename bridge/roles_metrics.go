package bridge

import "github.com/prometheus/client_golang/prometheus"

// RolesCollector returns the Prometheus series that say which roles this instance holds, for
// the command to register next to NewMetrics:
//
//	bridge_role_held{role="adapter/telegram"}   1 while this instance runs the adapter, else 0
//	bridge_cable_partitions_held                cable partitions held (of bridge_cable_partitions)
//	bridge_cable_partitions                     CablePartitions
//	bridge_instances_live                       live instances the last heartbeat saw
//	bridge_roles_coordinated                    1 while the leases are renewed in time
//	bridge_roles_taken_total                    roles this instance has taken (takeovers)
//
// Shared adapters (SingletonRunner false) have no role series: they run on every instance.
func (c *Core) RolesCollector() prometheus.Collector { return rolesCollector{c} }

var (
	roleHeldDesc = prometheus.NewDesc("bridge_role_held",
		"1 while this instance runs the singleton adapter of the role (adapter/<platform>), else 0.", []string{"role"}, nil)
	partitionsHeldDesc = prometheus.NewDesc("bridge_cable_partitions_held",
		"Cable subscription partitions this instance holds.", nil, nil)
	partitionsDesc = prometheus.NewDesc("bridge_cable_partitions",
		"Cable subscription partitions shared by all instances.", nil, nil)
	instancesDesc = prometheus.NewDesc("bridge_instances_live",
		"Bridge instances sharing the database that the last heartbeat saw alive, this one included.", nil, nil)
	coordinatedDesc = prometheus.NewDesc("bridge_roles_coordinated",
		"1 while this instance's leases are renewed in time; 0 before the first renewal and while the database is unreachable.", nil, nil)
	takenDesc = prometheus.NewDesc("bridge_roles_taken_total",
		"Roles (singleton adapters and cable partitions) this instance has taken since it started.", nil, nil)
)

type rolesCollector struct{ c *Core }

func (rc rolesCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{roleHeldDesc, partitionsHeldDesc, partitionsDesc, instancesDesc, coordinatedDesc, takenDesc} {
		ch <- d
	}
}

func (rc rolesCollector) Collect(ch chan<- prometheus.Metric) {
	s := rc.c.Roles()
	for _, p := range s.Running {
		ch <- prometheus.MustNewConstMetric(roleHeldDesc, prometheus.GaugeValue, 1, AdapterRole(p))
	}
	for _, p := range s.Standby {
		ch <- prometheus.MustNewConstMetric(roleHeldDesc, prometheus.GaugeValue, 0, AdapterRole(p))
	}
	ch <- prometheus.MustNewConstMetric(partitionsHeldDesc, prometheus.GaugeValue, float64(len(s.Partitions)))
	ch <- prometheus.MustNewConstMetric(partitionsDesc, prometheus.GaugeValue, CablePartitions)
	ch <- prometheus.MustNewConstMetric(instancesDesc, prometheus.GaugeValue, float64(s.Instances))
	coordinated := 0.0
	if s.Coordinated {
		coordinated = 1
	}
	ch <- prometheus.MustNewConstMetric(coordinatedDesc, prometheus.GaugeValue, coordinated)
	ch <- prometheus.MustNewConstMetric(takenDesc, prometheus.CounterValue, float64(s.Taken))
}
