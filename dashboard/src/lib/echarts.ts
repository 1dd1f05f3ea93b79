// echarts.ts - the parts of Apache ECharts the console uses (tree-shaken: custom series on a
// canvas, grid, tooltip), registered once.
import { CustomChart } from 'echarts/charts';
import { GridComponent, TooltipComponent } from 'echarts/components';
import * as echarts from 'echarts/core';
import { CanvasRenderer } from 'echarts/renderers';

echarts.use([CustomChart, GridComponent, TooltipComponent, CanvasRenderer]);

export { echarts };
