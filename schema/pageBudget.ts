import { GraphQLError, Kind, valueFromASTUntyped, type DocumentNode, type FragmentDefinitionNode, type SelectionSetNode } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import { DEFAULT_PAGE } from './connection.ts';

/** Connection fields: each multiplies what is under it by its `first`. */
const CONNECTIONS = new Set(['requests', 'products']);

/**
 * Refuses an operation that could return more than `maxNodes` connection nodes: `first` values multiply
 * down nested connections (requests(first: 1000) { products(first: 1000) } is a million products).
 * graphql-armor's cost limit counts fields and depth, not page sizes, so it cannot see this.
 */
export function pageBudgetPlugin(maxNodes: number): Plugin {
  return {
    onExecute({ args }) {
      const nodes = countNodes(args.document, args.variableValues ?? {});
      if (nodes > maxNodes) {
        throw new GraphQLError(
          `The query could return ${nodes} connection nodes, over the limit of ${maxNodes}: ask for smaller pages (first) and page with after`,
          { extensions: { code: 'BAD_REQUEST' } },
        );
      }
    },
  };
}

export function countNodes(document: DocumentNode, variables: Record<string, unknown>): number {
  const fragments = new Map<string, FragmentDefinitionNode>();
  for (const definition of document.definitions) {
    if (definition.kind === Kind.FRAGMENT_DEFINITION) fragments.set(definition.name.value, definition);
  }
  const walk = (selectionSet: SelectionSetNode | undefined, multiplier: number, seen: Set<string>): number => {
    let total = 0;
    for (const selection of selectionSet?.selections ?? []) {
      if (selection.kind === Kind.FIELD) {
        let inner = multiplier;
        if (CONNECTIONS.has(selection.name.value)) {
          const firstArg = selection.arguments?.find((arg) => arg.name.value === 'first');
          const first = firstArg ? Number(valueFromASTUntyped(firstArg.value, variables) ?? DEFAULT_PAGE) : DEFAULT_PAGE;
          inner = multiplier * (Number.isFinite(first) && first > 0 ? first : DEFAULT_PAGE);
          total += inner;
        }
        total += walk(selection.selectionSet, inner, seen);
      } else if (selection.kind === Kind.INLINE_FRAGMENT) {
        total += walk(selection.selectionSet, multiplier, seen);
      } else {
        const name = selection.name.value;
        if (seen.has(name)) continue;
        total += walk(fragments.get(name)?.selectionSet, multiplier, new Set([...seen, name]));
      }
    }
    return total;
  };
  let total = 0;
  for (const definition of document.definitions) {
    if (definition.kind === Kind.OPERATION_DEFINITION) total += walk(definition.selectionSet, 1, new Set());
  }
  return total;
}
