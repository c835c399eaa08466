import { empty } from "../dom";
import type { Ctx } from "../router";

/** metricsView is not built yet. */
export function metricsView({ root }: Ctx): void {
  root.append(empty("This view is not built yet."));
}
