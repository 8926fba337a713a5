/** A page of the dashboard: its element, its title, and how to stop its subscriptions and timers. */
export interface View {
  element: HTMLElement;
  title: string;
  dispose(): void;
}
