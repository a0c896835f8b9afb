export { catalogueService, type CatalogueServiceOptions, type CatalogueState } from './service.js';
export { migrations } from './store/migrations.js';
