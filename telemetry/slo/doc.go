// Package slo turns the mesh's SLO objects into Prometheus rule groups and
// reads their burn back for the /api/slos answer and the canary gates.
//
// # Rules
//
// The generated rules use Sloth's series names and labels, so Sloth's
// Grafana dashboards and anything written against Sloth's output work
// unchanged. One group per SLO (named "glassmesh-slo-<namespace>-<name>")
// holds, in evaluation order:
//
//   - slo:sli_error:ratio_rate{5m,30m,1h,2h,6h,1d,3d}: the share of bad
//     events over each window; and slo:sli_error:ratio_rate<window> (for
//     example ratio_rate30d) for the SLO window itself, the average of the
//     5m series over the window, as Sloth computes it;
//   - slo:objective:ratio, slo:error_budget:ratio, slo:time_period:days,
//     slo:current_burn_rate:ratio (5m), slo:period_burn_rate:ratio,
//     slo:period_error_budget_remaining:ratio and sloth_slo_info;
//   - two alerts named SLOErrorBudgetBurn, labelled severity (and
//     sloth_severity) "page" and "ticket": the SRE workbook's multi-window
//     multi-burn-rate alerts, page on 14.4 over 1h and 5m or 6 over 6h and
//     30m, ticket on 3 over 1d and 2h or 1 over 3d and 6h. For windows other
//     than 30 days the factors scale as in Sloth: each alert keeps its share
//     of the budget (2%, 5%, 10%, 10%) and its windows.
//   - slo:sli_error_by_version:ratio_rate{5m,30m,1h,2h,6h}: glassmesh's
//     own addition, the short-window error ratios per destination_version
//     (availability and latency SLIs only), so that a canary's version can
//     be judged alone. They have their own name so that Sloth's rules and
//     dashboards, which select slo:sli_error:* by the sloth_* labels only,
//     never see them.
//
// Every series carries sloth_id ("<namespace>-<service>-<name>"),
// sloth_service (the SLO's service), sloth_slo (its name) and namespace
// (its namespace); SLI series also carry sloth_window.
//
// # SLIs
//
// Requests are counted once, by DESIGN.md's reporter rule: the caller's
// report (reporter="source"), plus the callee's report where the caller is
// outside the mesh (reporter="destination", source_workload="unknown").
// An availability SLI counts as bad the requests answered 5xx or with a
// gRPC status in model.ErrorGRPCStatuses (gRPC answers carry HTTP 200); a
// latency SLI the requests slower than thresholdMs, from the
// istio_request_duration_milliseconds bucket whose le is the threshold
// (written the way Prometheus 3 normalises it, le="300.0"); a ratio SLI
// divides the user's two queries with $window expanded.
//
// Windows without requests have no SLI sample rather than NaN, so nothing
// alerts on no data; windows with requests but no errors give 0.
package slo
