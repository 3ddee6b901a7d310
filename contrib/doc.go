// Package contrib holds no code: the directory ships integrations for the
// tools around stackprint (a Zeek package, Suricata rules, a Grafana
// dashboard and Prometheus alerting rules, Elasticsearch and Splunk
// configuration). Its tests check each of them against what stackprint
// really writes and exports: alerts made by the output package, and the
// /metrics of the built daemon.
package contrib
