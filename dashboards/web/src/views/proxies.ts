import { empty } from "../dom";
import type { Ctx } from "../router";

/** proxiesView is not built yet. */
export function proxiesView({ root }: Ctx): void {
  root.append(empty("This view is not built yet."));
}
