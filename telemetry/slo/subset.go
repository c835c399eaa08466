package slo

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/glassmesh/glassmesh/control/model"
)

// SubsetMatchers selects the requests to a subset of a service: its
// workloads by name, which is exact whatever labels the subset uses. A
// subset without workloads matches nothing rather than the whole service.
func SubsetMatchers(m *model.Mesh, svc *model.Service, subset *model.Subset) string {
	sel := fmt.Sprintf(`destination_service_name=%q,destination_service_namespace=%q`, svc.Name, svc.Namespace)
	var names []string
	for _, w := range m.WorkloadsOf(svc, subset.Labels) {
		names = append(names, regexp.QuoteMeta(w.Name))
	}
	if len(names) == 0 {
		return sel + `,destination_workload="glassmesh-no-workload"`
	}
	return sel + ",destination_workload=~" + strconv.Quote(strings.Join(names, "|"))
}

// TicketBurnRate is the burn rate of s's fastest ticket alert (3 for a
// 30-day window: 10% of the budget in a day), scaled like the generated
// rules: under it, a subset is not burning its budget in earnest.
func TicketBurnRate(s *model.SLO) float64 {
	w := alertWindows[2]
	return burnFactor(sloWindow(s), w.budgetPercent, w.long)
}
