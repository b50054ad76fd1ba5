/**
 * The tiny part of the Reflect metadata API that tsyringe (a dependency of @peculiar/x509)
 * checks for at load time and uses for constructor parameter types. Installed only when no
 * real polyfill (reflect-metadata) is present. Must be imported before @peculiar/x509.
 */
type MetadataMap = Map<unknown, unknown>;

interface ReflectMetadata {
  defineMetadata(key: unknown, value: unknown, target: object, property?: PropertyKey): void;
  getOwnMetadata(key: unknown, target: object, property?: PropertyKey): unknown;
  getMetadata(key: unknown, target: object, property?: PropertyKey): unknown;
  hasMetadata(key: unknown, target: object, property?: PropertyKey): boolean;
  metadata(key: unknown, value: unknown): (target: object, property?: PropertyKey) => void;
}

const reflect = Reflect as unknown as Partial<ReflectMetadata>;

if (typeof reflect.getMetadata !== 'function') {
  const store = new WeakMap<object, Map<PropertyKey | undefined, MetadataMap>>();
  const ownMap = (target: object, property: PropertyKey | undefined, create: boolean): MetadataMap | undefined => {
    let byProperty = store.get(target);
    if (!byProperty) {
      if (!create) return undefined;
      byProperty = new Map();
      store.set(target, byProperty);
    }
    let map = byProperty.get(property);
    if (!map && create) {
      map = new Map();
      byProperty.set(property, map);
    }
    return map;
  };
  const getOwnMetadata = (key: unknown, target: object, property?: PropertyKey): unknown =>
    ownMap(target, property, false)?.get(key);
  const getMetadata = (key: unknown, target: object, property?: PropertyKey): unknown => {
    for (let t: object | null = target; t; t = Object.getPrototypeOf(t)) {
      const map = ownMap(t, property, false);
      if (map?.has(key)) return map.get(key);
    }
    return undefined;
  };
  const defineMetadata = (key: unknown, value: unknown, target: object, property?: PropertyKey): void => {
    ownMap(target, property, true)!.set(key, value);
  };
  Object.assign(Reflect, {
    defineMetadata,
    getOwnMetadata,
    getMetadata,
    hasMetadata: (key: unknown, target: object, property?: PropertyKey) => getMetadata(key, target, property) !== undefined,
    metadata: (key: unknown, value: unknown) => (target: object, property?: PropertyKey) =>
      defineMetadata(key, value, target, property),
  } satisfies ReflectMetadata);
}

export {};
