// echarts.ts - the parts of Apache ECharts the console uses (tree-shaken: custom series on a
// canvas, grid, tooltip, marked areas), registered once.
import { CustomChart } from 'echarts/charts';
import { GridComponent, MarkAreaComponent, TooltipComponent } from 'echarts/components';
import * as echarts from 'echarts/core';
import { CanvasRenderer } from 'echarts/renderers';

echarts.use([CustomChart, GridComponent, MarkAreaComponent, TooltipComponent, CanvasRenderer]);

export { echarts };
