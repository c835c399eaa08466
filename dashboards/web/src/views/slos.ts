import { empty } from "../dom";
import type { Ctx } from "../router";

/** slosView is not built yet. */
export function slosView({ root }: Ctx): void {
  root.append(empty("This view is not built yet."));
}
